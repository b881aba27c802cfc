"""The run's results: ``results.json`` (fixed schema), ``report.md`` (one table and the plot) and
``pareto.png`` (the search's cost metric vs test accuracy, one point per architecture, labelled with ε).
Per architecture: params, MACs, the cost, test accuracy, and the onnxruntime latency of its export measured
on this machine (fp32, and int8 when exported)."""

from __future__ import annotations

import io
from pathlib import Path

from automl._io import atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = ["write_report", "render_markdown", "plot_pareto", "summary_table"]


def _label(a: dict, i: int) -> str:
    return f"ε={a['epsilon']:g}" if a.get("epsilon") is not None else f"random {i}"


def _fmt_acc(acc) -> str:
    return f"{100 * acc:.2f} %" if acc is not None else "—"


def _fmt_macs(v) -> str:
    return "—" if v is None else (f"{v / 1e9:.3g} G" if v >= 1e9 else f"{v / 1e6:.3g} M" if v >= 1e6
                                  else f"{v / 1e3:.3g} K")


def _fmt_ms(v) -> str:
    return "—" if v is None else f"{v:.3g} ms"


def _fmt_int8(q) -> str:
    if not q:
        return "—"
    if q.get("error"):
        return "not quantised"
    size = q["size_bytes"] / q["fp32_size_bytes"] if q.get("fp32_size_bytes") else None
    return (f"{_fmt_ms(q.get('latency_ms'))}, {_fmt_acc(q.get('test_accuracy'))}, "
            + (f"{size:.2f}x" if size is not None else "—"))


def render_markdown(results: dict) -> str:
    lines = [
        f"# {results['recipe']}: {len(results['architectures'])} architectures by `{results['method']}`",
        "",
        f"Search time (weight + θ phases, no retraining): **{results['search_seconds']:.1f} s**.",
        "",
        f"| ε | params | MACs | cost ({results.get('cost_metric', 'params')}) | test accuracy | "
        f"latency fp32 | int8: latency, accuracy, size | search time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, a in enumerate(results["architectures"]):
        eps = f"{a['epsilon']:g}" if a.get("epsilon") is not None else f"random {i}"
        params = f"{a['params']:,}" if a.get("params") is not None else "—"
        lines.append(f"| {eps} | {params} | {_fmt_macs(a.get('macs'))} | {a['cost']:,.6g} | "
                     f"{_fmt_acc(a.get('test_accuracy'))} | {_fmt_ms(a.get('latency_ms'))} | "
                     f"{_fmt_int8(a.get('int8'))} | {results['search_seconds']:.1f} s (shared) |")
    lines += ["", "Latency: onnxruntime on this machine (CPU, batch 1, one thread), median after warm-up.",
              "", "Phase times: " + ", ".join(f"{k} {v:.1f} s" for k, v in results["phase_seconds"].items()),
              "", f"![{results.get('cost_metric', 'params')} vs test accuracy](pareto.png)", "",
              "Chosen operations:", ""]
    for i, a in enumerate(results["architectures"]):
        lines.append(f"- {_label(a, i)}: `{' '.join(a['choices'])}`")
    return "\n".join(lines) + "\n"


def plot_pareto(results: dict) -> bytes:
    """PNG bytes of the search's cost vs test accuracy (architectures without an accuracy are drawn at 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    archs = results["architectures"]
    metric = results.get("cost_metric", "params")
    xs = [a.get("cost") or 0 for a in archs]  # the search's own cost metric
    ys = [100 * (a.get("test_accuracy") or 0.0) for a in archs]
    ax.plot(xs, ys, "o", color="tab:blue")
    for i, (x, y, a) in enumerate(zip(xs, ys, archs)):
        ax.annotate(_label(a, i), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=9)
    ax.set_xlabel({"params": "parameters", "macs": "multiply-adds (MACs)", "latency": "latency [ms] (table)"}
                  .get(metric, metric))
    ax.set_ylabel("test accuracy [%]")
    ax.set_title(f"{results['recipe']} ({results['method']})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def summary_table(results: dict):
    from rich.table import Table

    t = Table(title=f"{results['recipe']}: {results['method']}, search {results['search_seconds']:.1f} s")
    for col in ("ε", "params", "cost", "test accuracy", "onnx"):
        t.add_column(col, justify="right" if col != "onnx" else "left")
    for i, a in enumerate(results["architectures"]):
        t.add_row(_label(a, i), f"{a['params']:,}" if a.get("params") is not None else "—", f"{a['cost']:,.6g}",
                  _fmt_acc(a.get("test_accuracy")), a.get("onnx") or "—")
    return t


def write_report(out: Path, results: dict, reporter=None) -> None:
    out = Path(out)
    atomic_write_json(out / "results.json", results)
    atomic_write_bytes(out / "pareto.png", plot_pareto(results))
    atomic_write_text(out / "report.md", render_markdown(results))
    if reporter is not None and reporter.enabled:
        from rich.console import Console

        Console().print(summary_table(results))
        reporter.info(f"results: {out / 'results.json'}  report: {out / 'report.md'}")
