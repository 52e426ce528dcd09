"""The syndicate's own work: shared costs, suppliers and SLAs, incidents and breaches,
radio coverage. See README.md in this folder and docs/syndicate.md."""
