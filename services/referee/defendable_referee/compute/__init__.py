"""The Compute lane's checks (issue 4): rule kinds whose figures the referee computes itself from the evidence files."""
