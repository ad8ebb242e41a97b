"""Singer target for Insider One user profiles."""
