// A grouped bar chart in SVG, small enough to write by hand (no charting library).

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

/**
 * groups: [{label, values: [number|null, ...]}]; series: [{name, className}] in the same
 * order as values; max: the top of the scale; format: value -> label above the bar.
 */
export function barChart(groups, series, {max, format, ticks = 5, title = ""}) {
  const width = 1000;
  const height = 320;
  const margin = {top: 24, right: 16, bottom: 56, left: 64};
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const svg = s("svg", {viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title});
  const top = max > 0 ? max : 1;
  const y = (v) => margin.top + plotH - (v / top) * plotH;

  for (let i = 0; i <= ticks; i++) {
    const v = (top / ticks) * i;
    svg.append(s("line", {class: "axis", x1: margin.left, x2: width - margin.right,
                          y1: y(v), y2: y(v)}));
    svg.append(s("text", {x: margin.left - 8, y: y(v) + 4, "text-anchor": "end"}, format(v)));
  }
  const slot = plotW / Math.max(groups.length, 1);
  const barW = Math.min(48, (slot * 0.7) / series.length);
  groups.forEach((group, gi) => {
    const x0 = margin.left + gi * slot + (slot - barW * series.length) / 2;
    group.values.forEach((value, si) => {
      const x = x0 + si * barW;
      if (value === null || value === undefined) {
        svg.append(s("text", {x: x + barW / 2, y: y(0) - 6, "text-anchor": "middle",
                              class: "muted"}, "n/a"));
        return;
      }
      const bar = s("rect", {x, y: y(value), width: barW - 4, height: Math.max(0, y(0) - y(value)),
                             class: series[si].className});
      bar.append(s("title", {}, `${group.label}: ${series[si].name} ${format(value)}`));
      svg.append(bar);
      svg.append(s("text", {x: x + (barW - 4) / 2, y: y(value) - 6, "text-anchor": "middle"},
                   format(value)));
    });
    svg.append(s("text", {x: margin.left + gi * slot + slot / 2, y: height - margin.bottom + 22,
                          "text-anchor": "middle"}, group.label));
  });
  svg.append(s("line", {class: "axis", x1: margin.left, x2: width - margin.right,
                        y1: y(0), y2: y(0)}));
  return svg;
}
