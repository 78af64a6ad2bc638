// Reports: completion rate, false-alarm rate and times to acknowledge and resolve per grid
// node for a day, a ten-day period or a month (GET /api/reports), as a table and charts.
import {api, urlWith} from "./api.js";
import {barChart} from "./chart.js";
import {fmtDuration, fmtPercent, h} from "./dom.js";

const PERIODS = [["day", "Day"], ["dekad", "Ten days"], ["month", "Month"]];
const LEVELS = [["cell", "Grid cell"], ["community", "Community / village"],
                ["township", "Township"], ["city", "City"]];

export function mount(root, _ctx, _arg, query) {
  // Without a chosen day the API reports the grid's today (in the grid's time zone, which
  // may be another date than the browser's); the field then shows that day.
  const period = select("period", PERIODS, query.get("period") || "dekad");
  const level = select("level", LEVELS, query.get("level") || "cell");
  const day = h("input", {type: "date", name: "date", id: "report-date",
                          value: query.get("date") || ""});
  const csv = h("a", {class: "btn small", id: "report-csv", download: true}, "Download CSV");
  const heading = h("span", {class: "muted", id: "report-range"});
  const error = h("div", {class: "error-box", hidden: true});
  const table = h("div", {class: "scroll", id: "report-table"});
  const rates = h("div", {class: "chart", id: "chart-rates"});
  const times = h("div", {class: "chart", id: "chart-times"});
  const controls = h("form", {class: "report-controls", onchange: () => load(),
                              onsubmit: (e) => e.preventDefault()},
    h("label", {class: "field"}, "Period", period),
    h("label", {class: "field"}, "Any day in it", day),
    h("label", {class: "field"}, "Per", level), csv, heading);
  root.append(h("div", {class: "reports"},
    h("section", {class: "panel"}, controls, error),
    h("div", {style: "display:flex;gap:16px;min-height:0"},
      h("section", {class: "panel", style: "flex:1"},
        h("h2", {}, "Completion and false alarms"), rates,
        legend([["bar-done", "completion rate"], ["bar-false", "false-alarm rate"]])),
      h("section", {class: "panel", style: "flex:1"},
        h("h2", {}, "Time to acknowledge and to resolve (median / p90)"), times,
        legend([["bar-done", "median"], ["bar-false", "p90"]]))),
    h("section", {class: "panel", style: "flex:1;min-height:0"}, h("h2", {}, "Figures"), table)));

  async function load() {
    const params = {period: period.value, level: level.value};
    if (day.value) params.date = day.value;
    csv.href = urlWith("/api/reports", {...params, format: "csv"}).toString();
    error.hidden = true;
    let report;
    try {
      report = await api("/api/reports", {params});
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      return;
    }
    if (!day.value) day.value = report.start.slice(0, 10);
    const end = new Date(new Date(report.end).getTime() - 1);
    heading.textContent = `${report.start.slice(0, 10)} to ${end.toISOString().slice(0, 10)}`
      + ` (${report.timezone})`;
    render(report);
  }

  function render(report) {
    const rows = report.rows;
    rates.replaceChildren(barChart(
      rows.map((r) => ({label: r.name, values: [r.completion_rate, r.false_alarm_rate]})),
      [{name: "completion rate", className: "bar-done"},
       {name: "false-alarm rate", className: "bar-false"}],
      {max: 1, format: (v) => `${Math.round(v * 100)}%`, title: "Completion rate"}));
    const slowest = Math.max(60, ...rows.flatMap((r) => [r.ack_p90_s, r.resolve_p90_s])
      .filter((v) => v !== null));
    times.replaceChildren(barChart(
      rows.flatMap((r) => [
        {label: `${r.name} ack`, values: [r.ack_median_s, r.ack_p90_s]},
        {label: `${r.name} resolve`, values: [r.resolve_median_s, r.resolve_p90_s]}]),
      [{name: "median", className: "bar-done"}, {name: "p90", className: "bar-false"}],
      {max: slowest, format: fmtDuration, title: "Times to acknowledge and resolve"}));
    const header = ["Grid node", "Level", "Opened", "Completed", "Completion", "False alarms",
                    "False-alarm rate", "Ack median", "Ack p90", "Resolve median", "Resolve p90"];
    table.replaceChildren(h("table", {class: "report"},
      h("thead", {}, h("tr", {}, ...header.map((t) => h("th", {}, t)))),
      h("tbody", {}, ...(rows.length ? rows.map((r) => h("tr", {dataset: {node: r.node}},
        h("td", {}, r.name), h("td", {}, r.level), h("td", {}, r.opened),
        h("td", {}, r.completed), h("td", {}, fmtPercent(r.completion_rate)),
        h("td", {}, r.false_alarms), h("td", {}, fmtPercent(r.false_alarm_rate)),
        h("td", {}, fmtDuration(r.ack_median_s)), h("td", {}, fmtDuration(r.ack_p90_s)),
        h("td", {}, fmtDuration(r.resolve_median_s)), h("td", {}, fmtDuration(r.resolve_p90_s))))
        : [h("tr", {}, h("td", {colspan: header.length, class: "empty"},
            "No grid node of this level in your scope."))]))));
  }

  load();
  return () => {};
}

function select(name, options, chosen) {
  return h("select", {name, id: `report-${name}`}, ...options.map(([value, text]) =>
    h("option", {value, selected: value === chosen}, text)));
}

function legend(items) {
  return h("div", {class: "legend"}, ...items.map(([cls, text]) =>
    h("span", {}, h("i", {class: cls, style: `background:var(${cls === "bar-done"
      ? "--ok" : "--muted"})`}), text)));
}
