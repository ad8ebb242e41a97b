"""Local emulator of the SFMC and Insider One APIs."""
