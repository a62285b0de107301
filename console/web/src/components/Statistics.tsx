// Requests per day of a service: an SVG bar chart, with the same numbers as a table.

import { admin } from "../api";
import type { DailyCount, Service } from "../types";
import { Feedback, Loading, Scroll, useLoad } from "../ui";

const WIDTH = 720;
const HEIGHT = 220;
const PAD = { left: 44, right: 8, top: 12, bottom: 36 };

export function Statistics(props: { service: Service }) {
  const { service } = props;
  const stats = useLoad(
    () =>
      admin<{ days: DailyCount[]; total_request_count: number }>(
        "GET",
        `/apps/${service.application_id}/services/${service.service_id}/statistics`,
      ),
    [service.service_id],
  );
  return (
    <section aria-labelledby="stats-heading">
      <div class="row spread">
        <h2 id="stats-heading">Requests per day (last 30 days, UTC)</h2>
        <button type="button" class="secondary" onClick={stats.reload}>
          Refresh
        </button>
      </div>
      <Feedback error={stats.error} />
      {stats.loading && !stats.data ? <Loading what="statistics" /> : null}
      {stats.data ? (
        <>
          <p>
            Total: <strong data-testid="stats-total">{stats.data.total_request_count}</strong>{" "}
            requests
          </p>
          <Chart days={stats.data.days} />
          <details>
            <summary>The numbers as a table</summary>
            <Scroll label="Requests per day">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Day</th>
                    <th scope="col">Requests</th>
                  </tr>
                </thead>
                <tbody>
                  {stats.data.days.map((d) => (
                    <tr key={d.date}>
                      <td>{d.date}</td>
                      <td>{d.request_count}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Scroll>
          </details>
        </>
      ) : null}
    </section>
  );
}

function Chart(props: { days: DailyCount[] }) {
  const { days } = props;
  const max = Math.max(1, ...days.map((d) => d.request_count));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const step = plotW / Math.max(days.length, 1);
  const ticks = [0, Math.round(max / 2), max];
  return (
    <svg
      class="chart"
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      role="img"
      aria-label={`Bar chart of requests per day, at most ${max} in a day`}
    >
      {ticks.map((t) => {
        const y = PAD.top + plotH - (t / max) * plotH;
        return (
          <g key={t}>
            <line x1={PAD.left} x2={WIDTH - PAD.right} y1={y} y2={y} class="grid" />
            <text x={PAD.left - 6} y={y + 4} text-anchor="end" class="axis">
              {t}
            </text>
          </g>
        );
      })}
      {days.map((d, i) => {
        const h = (d.request_count / max) * plotH;
        const x = PAD.left + i * step + step * 0.15;
        return (
          <rect
            key={d.date}
            class="bar"
            x={x}
            y={PAD.top + plotH - h}
            width={step * 0.7}
            height={h}
            data-date={d.date}
            data-count={d.request_count}
          >
            <title>
              {d.date}: {d.request_count} requests
            </title>
          </rect>
        );
      })}
      {days.map((d, i) =>
        (days.length - 1 - i) % 7 === 0 ? (
          <text key={d.date} x={PAD.left + (i + 0.5) * step} y={HEIGHT - 12} text-anchor="middle" class="axis">
            {d.date.slice(5)}
          </text>
        ) : null,
      )}
    </svg>
  );
}
