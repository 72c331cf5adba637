// Usage Reports: ask /reports/usage for the chosen range (aligned to this browser's hours or midnights),
// draw the charts with LicentiaCharts, and keep both CSV links pointing at the same range.
(() => {
  "use strict";
  const REPORT = "/api/v1/admin/reports/usage";
  const USAGE_CSV = "/api/v1/admin/usage.csv";

  // A local date from an <input type="date"> value ("2026-11-24"), at midnight here.
  const localDay = (value) => {
    const [y, m, d] = value.split("-").map(Number);
    return new Date(y, m - 1, d);
  };
  const dateValue = (date) =>
    `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;

  // {since, until, bucket} in seconds: the last N days up to the end of this hour (or of today), or the chosen dates.
  const chosenRange = (form) => {
    const f = form.elements;
    const bucket = f.bucket.value;
    const now = new Date();
    let start;
    let end;
    if (f.range.value === "custom") {
      if (!f.from.value || !f.to.value) throw new Error("Choose both dates.");
      start = localDay(f.from.value);
      end = localDay(f.to.value);
      end.setDate(end.getDate() + 1);
    } else {
      const days = Number(f.range.value);
      if (bucket === "hour") {
        end = new Date(now);
        end.setMinutes(0, 0, 0);
        end.setHours(end.getHours() + 1);
        start = new Date(end.getTime() - days * 86400 * 1000);
      } else {
        end = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
        start = new Date(end);
        start.setDate(start.getDate() - days);
      }
    }
    return { since: start.getTime() / 1000, until: end.getTime() / 1000, bucket };
  };

  const label = (seconds, report) => {
    const at = new Date(seconds * 1000);
    if (report.bucket === "day") return at.toLocaleDateString([], { month: "short", day: "numeric" });
    const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    if (report.until - report.since <= 86400) return time;
    return `${at.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
  };

  const SIZE = { width: 960, height: 260 };

  const draw = (root, report) => {
    const labels = report.buckets.map((b) => label(b.start, report));
    const per = report.bucket === "day" ? "day" : "hour";
    LicentiaCharts.line(root.getElementById("chart-printers"), {
      title: `Printers in use (peak per ${per})`,
      labels,
      series: [{ name: "Printers", values: report.buckets.map((b) => b.printers) }],
      yLabel: "printers",
      ...SIZE,
    });
    LicentiaCharts.line(root.getElementById("chart-seats"), {
      title: `Seats in use (peak per ${per})`,
      labels,
      series: [
        ...(report.products.length === 1 ? [] : [{ name: "All seats", values: report.buckets.map((b) => b.seats_total) }]),
        ...report.products.map((product) => ({ name: product, values: report.buckets.map((b) => b.seats[product] ?? 0) })),
      ],
      yLabel: "seats",
      ...SIZE,
    });
    const reasons = report.denial_reasons.length ? report.denial_reasons : ["none"];
    const denials = root.getElementById("chart-denials");
    const words = JSON.parse(denials.dataset.reasons || "{}");
    LicentiaCharts.bar(denials, {
      title: `Refused requests per ${per}, by reason`,
      labels,
      stacked: true,
      legend: true, // always: the reasons' words, even for one reason
      series: reasons.map((reason) => ({
        name: words[reason] ?? reason.replaceAll("_", " "),
        values: report.buckets.map((b) => b.denials[reason] ?? 0),
      })),
      yLabel: "refused",
      ...SIZE,
    });
    const max = (values) => values.reduce((m, v) => Math.max(m, v), 0);
    const summary = root.getElementById("report-summary");
    summary.querySelector('[data-summary="printers"]').textContent = String(max(report.buckets.map((b) => b.printers)));
    summary.querySelector('[data-summary="seats"]').textContent = String(max(report.buckets.map((b) => b.seats_total)));
    summary.querySelector('[data-summary="denials"]').textContent =
      String(report.buckets.reduce((sum, b) => sum + b.denials_total, 0));
    summary.removeAttribute("aria-busy");
  };

  Console.pages["usage-reports"] = (root) => {
    const form = root.getElementById("report-form");
    const exportForm = root.getElementById("usage-export");
    const f = form.elements;

    // Both CSV links follow the chosen range (and the export filters); the report's parameters are returned.
    const setLinks = () => {
      const range = chosenRange(form);
      const params = new URLSearchParams({ bucket: range.bucket, since: range.since, until: range.until });
      root.getElementById("report-csv").href = `${REPORT}.csv?${params}`;
      // Every row of the range: the export streams them all (no row limit, no silent cut-off).
      const usage = new URLSearchParams({ since: range.since, until: range.until });
      const e = exportForm.elements;
      if (e.kind.value) usage.set("kind", e.kind.value);
      if (e.client_host.value.trim()) usage.set("client_host", e.client_host.value.trim());
      if (e.failed_only.checked) usage.set("failed_only", "true");
      root.getElementById("usage-csv").href = `${USAGE_CSV}?${usage}`;
      return params;
    };
    const quietly = () => {
      try {
        setLinks();
      } catch {
        // an incomplete custom range: the links keep the last complete one
      }
    };

    const show = async () => {
      Console.clear(form);
      let params;
      try {
        params = setLinks();
      } catch (error) {
        Console.fail(form, error);
        return;
      }
      await Console.busy(root.getElementById("report-show"), async () => {
        let report;
        try {
          report = await Console.api("GET", `${REPORT}?${params}`);
        } catch (error) {
          Console.fail(form, error);
          return;
        }
        draw(root, report);
      });
    };

    f.range.addEventListener("change", () => {
      const custom = f.range.value === "custom";
      root.getElementById("from-field").hidden = !custom;
      root.getElementById("to-field").hidden = !custom;
      if (custom && !f.from.value) {
        const today = new Date();
        f.to.value = dateValue(today);
        today.setDate(today.getDate() - 6);
        f.from.value = dateValue(today);
      }
      f.bucket.value = f.range.selectedOptions[0].dataset.bucket;
    });
    for (const element of [form, exportForm]) {
      element.addEventListener("input", quietly);
      element.addEventListener("change", quietly);
    }
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      show();
    });
    show();
  };
})();
