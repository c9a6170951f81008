"""Cases: incidents and their lifecycle, SLA clocks, the SOC that works them, and the metrics."""
