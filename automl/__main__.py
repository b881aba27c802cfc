from automl.cli import main

raise SystemExit(main())
