"""Access reviews: campaigns that ask each team's leads to certify or revoke what the team gives (being built)."""
