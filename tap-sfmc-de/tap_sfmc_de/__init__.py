"""Singer tap for Salesforce Marketing Cloud Data Extensions."""
