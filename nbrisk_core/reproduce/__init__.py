"""`nbrisk reproduce`: the paper's whole protocol in one resumable command, with the paper's
numbers, NBRisk's numbers and the synthetic cohort's oracle side by side."""
