"""`make bench`: side-by-side timings and memory, each against a baseline run in the same process."""
