// k6 closed-model load for the load-generator benchmark: VUS virtual users, each sending GET URL in a loop
// with no think time, for DURATION. Bodies are discarded, as wrk and `overdrive load` do.
//   k6 run -e URL=http://127.0.0.1:18480/ -e VUS=64 -e DURATION=10s benchmarks/generators/k6_get.js
import http from "k6/http";

export const options = {
  discardResponseBodies: true,
  scenarios: {
    closed: {
      executor: "constant-vus",
      vus: Number(__ENV.VUS || 64),
      duration: __ENV.DURATION || "10s",
      gracefulStop: "5s",
    },
  },
  summaryTrendStats: ["avg", "min", "med", "max", "p(90)", "p(99)"],
};

export default function () {
  http.get(__ENV.URL);
}
