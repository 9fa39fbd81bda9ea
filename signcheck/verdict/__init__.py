"""What a run concludes: each test's result class, the findings, the verdict sentence and the
exit code (`signcheck.verdict.model`); findings raised by tests (`signcheck.verdict.raise_`)."""
