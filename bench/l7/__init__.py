"""nodegate's L7 engine against nginx and haproxy (see run.py)."""
