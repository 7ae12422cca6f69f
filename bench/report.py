"""The figures of a `make bench` run: ratios to ceilings, the table, JSON and the chart."""

import json
from pathlib import Path
from typing import Any, TypedDict

from bench.load import LoadSummary

# Targets from the issue: each a ratio measured within one run.
HOT_VS_PGBENCH = 0.35
LAST_VS_FIRST_QUARTER = 0.9
MANY_VS_HOT = 1.0
READS_VS_TRIVIAL = 0.3
LOGINS_VS_BCRYPT = 0.9
P99_LIMIT_MS = 50.0

# The pgbench shapes (bench/suite.py): the service's transaction before the rules on
# one hot row (the hot course's target is against it) and on 100 random rows, and
# the transaction the service sends now, with the rules, on the hot row.
PGBENCH_SHAPES = (
    ("hot", "one hot row"),
    ("random100", "100 random rows"),
    ("hot+rules", "hot row + rules (student lock, standing, event)"),
)


class Figure(TypedDict):
    """One row of the table (and of results.json's "figures")."""

    figure: str
    value: str
    ceiling: str
    ratio: float | None
    target: str
    met: bool | None
    margin: float | None


def figure_row(
    name: str,
    value: str,
    ceiling: str = "",
    ratio: float | None = None,
    target: str = "",
    met: bool | None = None,
    margin: float | None = None,
) -> Figure:
    """One row. `margin` puts every target on one scale for the chart: >= 1 means met."""
    if margin is None and ratio is not None and target.startswith(">= "):
        margin = ratio / float(target.split()[1])
    return {
        "figure": name,
        "value": value,
        "ceiling": ceiling,
        "ratio": None if ratio is None else round(ratio, 3),
        "target": target,
        "met": met,
        "margin": None if margin is None else round(margin, 3),
    }


def _ratio(value: float, ceiling: float) -> float | None:
    return value / ceiling if ceiling else None


def _at_least(ratio: float | None, target: float) -> bool | None:
    return None if ratio is None else ratio >= target


def _p99(name: str, summary: LoadSummary) -> Figure:
    p99 = summary["p99_ms"]
    return figure_row(
        name,
        f"{p99:.1f} ms",
        f"{P99_LIMIT_MS:.0f} ms",
        p99 / P99_LIMIT_MS,
        f"< {P99_LIMIT_MS:.0f} ms",
        p99 < P99_LIMIT_MS,
        margin=P99_LIMIT_MS / max(p99, 1e-9),
    )


def _unexpected(summary: LoadSummary, ok: set[str]) -> int:
    return sum(n for status, n in summary["statuses"].items() if status not in ok)


def evaluate(results: dict[str, Any]) -> list[Figure]:
    """The table's rows. A trial run with --only has gaps: rows whose inputs are missing are left out."""
    pg = results.get("pgbench")
    trivial = results.get("trivial")
    bcrypt = results.get("bcrypt")
    hot = results.get("hot_course")
    figures: list[Figure] = []
    if pg:
        for shape, label in PGBENCH_SHAPES:
            if f"{shape}@50" not in pg:  # hot+rules: not in results.json of runs before it existed
                continue
            tps = ", ".join(f"{pg[f'{shape}@{c}']['tps']:,.0f}" for c in (1, 4, 16, 50))
            figures.append(figure_row(f"Ceiling: pgbench, {label} (1/4/16/50 clients)", f"{tps} TPS"))
        figures.append(
            figure_row("Ceiling: pgbench, full-course shape (50 clients)", f"{pg['full@50']['tps']:,.0f} TPS")
        )
    if trivial:
        figures.append(
            figure_row(
                "Ceiling: trivial endpoint (50 clients)",
                f"{trivial['rate_per_s']:,.0f} RPS, p99 {trivial['p99_ms']:.1f} ms",
            )
        )
    if bcrypt:
        figures.append(
            figure_row(
                "Ceiling: bcrypt (cores / time per hash)",
                f"{bcrypt['logins_per_s']:.2f} /s ({bcrypt['cores']} x {bcrypt['seconds_per_hash']:.3f} s)",
            )
        )

    if hot:
        hot_ceiling = pg["hot@50"]["tps"] if pg else 0
        ratio = _ratio(hot["rate_per_s"], hot_ceiling)
        figures.append(
            figure_row(
                "Hot course: registrations/s (1,000 seats, 50 clients)",
                f"{hot['rate_per_s']:,.0f} /s",
                f"pgbench hot@50 {hot_ceiling:,.0f}",
                ratio,
                f">= {HOT_VS_PGBENCH}",
                _at_least(ratio, HOT_VS_PGBENCH) and _unexpected(hot, {"200"}) == 0,
            )
        )
        rules = pg.get("hot+rules@50") if pg else None
        if rules:
            figures.append(
                figure_row(
                    "Hot course: against the rules shape",
                    f"{hot['rate_per_s']:,.0f} /s",
                    f"pgbench hot+rules@50 {rules['tps']:,.0f}",
                    _ratio(hot["rate_per_s"], rules["tps"]),
                )
            )
        figures.append(
            figure_row(
                "Hot course: latency p50 / p95 / p99",
                f"{hot['p50_ms']:.1f} / {hot['p95_ms']:.1f} / {hot['p99_ms']:.1f} ms",
            )
        )
        quarters = hot["quarter_rates_per_s"]
        figures.append(
            figure_row(
                "Hot course: rate per quarter of completions",
                " / ".join(f"{q:,.0f}" for q in quarters),
                "first quarter",
                hot["last_over_first_quarter"],
                f">= {LAST_VS_FIRST_QUARTER} (last/first)",
                _at_least(hot["last_over_first_quarter"], LAST_VS_FIRST_QUARTER),
            )
        )

    full = results.get("full_course")
    if full:
        full_ceiling = pg["full@50"]["tps"] if pg else 0
        figures.append(
            figure_row(
                "Full course: 409 answers/s (50 clients)",
                f"{full['rate_per_s']:,.0f} /s, p99 {full['p99_ms']:.1f} ms",
                f"pgbench full@50 {full_ceiling:,.0f}",
                _ratio(full["rate_per_s"], full_ceiling),
            )
        )

    many = results.get("many_courses")
    if many:
        hot_rate = hot["rate_per_s"] if hot else 0
        ratio = _ratio(many["rate_per_s"], hot_rate)
        figures.append(
            figure_row(
                "Many courses: registrations/s (100 courses, 50 clients)",
                f"{many['rate_per_s']:,.0f} /s, p99 {many['p99_ms']:.1f} ms",
                f"hot course {hot_rate:,.0f}",
                ratio,
                f">= {MANY_VS_HOT}",
                _at_least(ratio, MANY_VS_HOT) and _unexpected(many, {"200"}) == 0,
            )
        )
        random_ceiling = pg["random100@50"]["tps"] if pg else 0
        figures.append(
            figure_row(
                "Many courses: against pgbench on 100 rows",
                f"{many['rate_per_s']:,.0f} /s",
                f"pgbench random100@50 {random_ceiling:,.0f}",
                _ratio(many["rate_per_s"], random_ceiling),
            )
        )

    for key, label in (("courses", "GET /semesters/{id}/courses"), ("my_courses", "GET /semesters/{id}/my-courses")):
        if "reads" not in results:
            break
        read = results["reads"][key]
        trivial_rate = trivial["rate_per_s"] if trivial else 0
        ratio = _ratio(read["rate_per_s"], trivial_rate)
        figures.append(
            figure_row(
                f"Reads: {label} RPS (50 clients)",
                f"{read['rate_per_s']:,.0f} RPS",
                f"trivial {trivial_rate:,.0f}",
                ratio,
                f">= {READS_VS_TRIVIAL}",
                _at_least(ratio, READS_VS_TRIVIAL) and _unexpected(read, {"200"}) == 0,
            )
        )
        figures.append(_p99(f"Reads: {label} p99", read))

    storm = results.get("login_storm")
    if storm and bcrypt:  # the storm's ceiling: main() measures both or neither
        logins = storm["logins"]
        ratio = _ratio(logins["rate_per_s"], bcrypt["logins_per_s"])
        figures.append(
            figure_row(
                f"Login storm: {logins['requests']} logins at once",
                f"{logins['rate_per_s']:.2f} /s",
                f"bcrypt {bcrypt['logins_per_s']:.2f}",
                ratio,
                f">= {LOGINS_VS_BCRYPT}",
                _at_least(ratio, LOGINS_VS_BCRYPT) and _unexpected(logins, {"200"}) == 0,
            )
        )
        readers = storm["readers"]
        figures.append(
            _p99(
                f"Login storm: reads meanwhile p99 ({readers['clients']} readers, "
                f"{storm['reads_during']['rate_per_s']:,.0f} RPS)",
                storm["reads_during"],
            )
        )

    if results.get("opening") or results.get("opening_room"):
        from bench.opening_report import opening_figures

        figures.extend(opening_figures(results))

    places = results.get("places")
    if places:
        best = max(places["rates"], key=lambda run: (run["within_target"], run["rate_per_s"]))
        figures.append(
            figure_row(
                "Waiting room door: places a second answered with p99 within 100 ms",
                f"{places['max_rate_within_target']:,}/s (at {best['rate_per_s']:,}/s: p99 {best['p99_ms']} ms)",
                "",
                None,
                ">= 1,100/s (the opening's first seconds at 10,000 students)",
                places["max_rate_within_target"] >= 1_100,
            )
        )

    integrity = results.get("integrity")
    if integrity:
        figures.append(
            figure_row(
                "Integrity: the service's invariant audit",
                f"{integrity['registrations']:,} registrations",
                "",
                None,
                "0 violations",
                integrity["ok"],
            )
        )
    return figures


def _cpu_line(name: str, cores: dict[str, float]) -> str:
    order = ("load_generator", "api", "postgres", "bench", "other", "stolen", "idle")
    return f"  {name:<22}" + "  ".join(f"{key} {cores.get(key, 0):.2f}" for key in order)


def print_table(results: dict[str, Any]) -> str:
    figures = results["figures"]
    widths = [
        max(len(str(row[key] if row[key] is not None else "")) for row in figures)
        for key in ("figure", "value", "ceiling")
    ]
    header = f"{'figure':<{widths[0]}}  {'value':<{widths[1]}}  {'ceiling':<{widths[2]}}  {'ratio':>6}  target"
    lines = [header, "-" * len(header)]
    for row in figures:
        ratio = f"{row['ratio']:.3f}" if row["ratio"] is not None else ""
        verdict = {True: "met", False: "MISSED", None: ""}[row["met"]]
        target = f"{row['target']} {verdict}".strip()
        lines.append(
            f"{row['figure']:<{widths[0]}}  {row['value']:<{widths[1]}}  {row['ceiling']:<{widths[2]}}"
            f"  {ratio:>6}  {target}"
        )
    lines.append("")
    lines.append(f"cores used during each run (of {results['machine']['cores']}):")
    runs = (
        ("pgbench hot@50", ("pgbench", "hot@50")),
        ("pgbench random100@50", ("pgbench", "random100@50")),
        ("pgbench hot+rules@50", ("pgbench", "hot+rules@50")),
        ("trivial endpoint", ("trivial",)),
        ("hot course", ("hot_course",)),
        ("full course", ("full_course",)),
        ("many courses", ("many_courses",)),
        ("reads courses", ("reads", "courses")),
        ("reads my-courses", ("reads", "my_courses")),
        ("login storm", ("login_storm", "logins")),
    )
    for name, path in runs:
        node = results
        for key in path:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if node:
            lines.append(_cpu_line(name, node["cpu_cores"]))
    for run in results.get("places", {}).get("rates", []):
        lines.append(_cpu_line(f"places {run['rate_per_s']:,}/s", run["cores"]))
    for run in results.get("places", {}).get("reference", {}).get("rates", []):
        lines.append(_cpu_line(f"places {run['rate_per_s']:,}/s (reference)", run["cores"]))
    if results.get("opening") or results.get("opening_room"):
        from bench.opening_report import growth_table, variants

        for _key, label, opening in variants(results):
            lines.append(_cpu_line(f"opening ({label})", opening["main"]["cpu_cores"]))
        lines.extend(growth_table(results))
    table = "\n".join(lines)
    print("\n" + table)
    return table


def write_report(report_dir: Path, results: dict[str, Any], table: str) -> None:
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (report_dir / "table.txt").write_text(table + "\n")
    if results.get("opening") or results.get("opening_room"):
        try:
            from bench.opening_report import opening_chart

            opening_chart(report_dir / "opening.png", results)
        except ImportError:
            print("matplotlib is not installed: no opening chart")
    complete = all(
        key in results
        for key in ("pgbench", "trivial", "hot_course", "full_course", "many_courses", "reads", "login_storm")
    )
    if not complete:
        print("a trial run (--only): no chart")
        return
    try:
        _chart(report_dir / "chart.png", results)
    except ImportError:
        print("matplotlib is not installed: no chart (`make bench` installs it with requirements-dev.txt)")


def _chart(path: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(14, 9.5))
    machine = results["machine"]
    fig.suptitle(
        f"make bench {results['started']}  -  {machine['cores']} cores, {machine['settings']['workers']} workers "
        f"({machine['settings']['launcher']}), PostgreSQL {machine['postgresql']}"
        + (f"  -  {results['label']}" if results.get("label") else ""),
        fontsize=11,
    )

    # 1. Every target on one scale: figure / target (p99 rows: 50 ms / p99); 1 or more is met.
    ax = axes[0][0]
    rows = [row for row in results["figures"] if row.get("margin") is not None]
    names = [row["figure"].replace("Login storm: ", "Storm: ")[:48] for row in rows]
    margins = [max(row["margin"], 1e-3) for row in rows]
    colours = ["tab:green" if row["met"] else "tab:red" for row in rows]
    ax.barh(range(len(rows)), margins, color=colours)
    for i, row in enumerate(rows):
        shown = row["value"] if "p99" in row["figure"] else f"{row['ratio']:.3f}"
        ax.text(margins[i], i, f" {shown} (target {row['target']})", va="center", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlim(min([*margins, 0.1]) / 2, max([*margins, 1.0]) * 30)
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("figure / target (p99: 50 ms / p99), log scale; right of the line = met")
    ax.set_title("Targets: green met, red missed", fontsize=10)

    # 2. The hot course filling up: completions over time, every round.
    ax = axes[0][1]
    hot = results["hot_course"]
    for index, round_ in enumerate(hot["rounds"]):
        curve = round_["completion_curve_ms"]
        ax.plot(
            curve,
            range(1, len(curve) + 1),
            label=f"round {index + 1}: {round_['rate_per_s']:,.0f}/s, "
            f"quarters {', '.join(f'{q:,.0f}' for q in round_['quarter_rates_per_s'])}",
        )
    ax.set_xlabel("ms since the first request")
    ax.set_ylabel("registrations completed")
    ax.set_title("Hot course: 1,000 students, 1,000 seats, 50 clients (straight = flat rate)", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)

    # 3. pgbench ceilings against the client count, with the API's figures at 50 clients.
    ax = axes[1][0]
    pg = results["pgbench"]
    clients = [1, 4, 16, 50]
    ax.plot(clients, [pg[f"hot@{c}"]["tps"] for c in clients], "o-", label="pgbench: one hot row")
    ax.plot(clients, [pg[f"random100@{c}"]["tps"] for c in clients], "s-", label="pgbench: 100 random rows")
    if "hot+rules@50" in pg:
        ax.plot(
            clients,
            [pg[f"hot+rules@{c}"]["tps"] for c in clients],
            "o--",
            label="pgbench: hot row + rules (6 round trips)",
        )
    ax.plot([50], [hot["rate_per_s"]], "r*", markersize=14, label="API: hot course")
    ax.plot([50], [results["many_courses"]["rate_per_s"]], "m^", markersize=11, label="API: many courses")
    ax.set_xscale("log")
    ax.set_xticks(clients, [str(c) for c in clients])
    ax.set_xlabel("clients")
    ax.set_ylabel("transactions (registrations) per second")
    ax.set_title("Registration throughput against PostgreSQL's own", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    # 4. Latency percentiles per HTTP scenario.
    ax = axes[1][1]
    scenarios = [
        ("trivial", results["trivial"]),
        ("hot course", hot),
        ("full course", results["full_course"]),
        ("many courses", results["many_courses"]),
        ("courses", results["reads"]["courses"]),
        ("my-courses", results["reads"]["my_courses"]),
        ("reads in storm", results["login_storm"]["reads_during"]),
    ]
    width = 0.27
    for offset, key in ((-width, "p50_ms"), (0, "p95_ms"), (width, "p99_ms")):
        ax.bar(
            [i + offset for i in range(len(scenarios))],
            [s[key] for _, s in scenarios],
            width,
            label=key.replace("_ms", ""),
        )
    ax.axhline(P99_LIMIT_MS, color="red", linestyle="--", linewidth=1, label="50 ms")
    ax.set_xticks(range(len(scenarios)), [name for name, _ in scenarios], fontsize=8, rotation=15)
    ax.set_yscale("log")
    ax.set_ylabel("ms (log scale)")
    ax.set_title("Latency at 50 clients (storm: background readers)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
