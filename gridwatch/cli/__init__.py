"""The command line: `gridwatch serve | check-config | analyze | users | models`."""
