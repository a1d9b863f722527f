"""Recovery: the stuck-work report, beat's reconciliation, and the support staff's redrive."""
