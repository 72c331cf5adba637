"""Alerts: email (SMTP) and webhook notices for relationship, license and denial incidents.

`rules` decides (pure functions), `delivery` sends, `service` runs the loop in a server.
"""
