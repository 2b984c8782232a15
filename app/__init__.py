"""partnergate: keeps the answer to "is this Constant Contact account ours?"."""
