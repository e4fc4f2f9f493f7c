"""The PR report (one CML comment per PR) and the statistics behind it: intervals,
baselines, slices, calibration, attributions and the gates. It reads files and git, never the forker's
code."""
