"""What a run says: the result model, the summary, evidence and the catalogue."""
