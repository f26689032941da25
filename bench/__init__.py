"""``python -m bench``: drive Dompet over real HTTP with wrk and measure its limits."""
