"""People who use the console: an email, a role, and (in password mode) an argon2 hash."""
