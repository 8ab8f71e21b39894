"""HTTP: the player page, HLS files, the status and control API, /healthz and /metrics."""
