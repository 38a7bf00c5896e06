"""The `sorf` command (sorf/cli.py): it sits on the sensor and the analyser, and sets what is process-wide."""
