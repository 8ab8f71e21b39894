"""webtv: a generative TV channel that airs around the clock.

Data flow, one package a stage: director (theme -> shots), producer (shot -> clip),
library (clips on disk + index), programmer (library -> ffconcat blocks), playout
(blocks -> RTMP / HLS outputs). ``channel`` wires them together; ``http`` serves the page
and the API.
"""

__version__ = "0.1.0"
