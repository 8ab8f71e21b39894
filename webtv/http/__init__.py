"""HTTP: the viewer page, the HLS files and the control API."""
