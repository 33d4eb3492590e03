"""Reports of a run: JSON journal, JUnit XML, HTML with timelines."""
