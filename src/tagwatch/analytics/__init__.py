"""Analytics: the daily pseudonymised Parquet export and the PostGIS views for GIS analysts.

Both show analysts pseudonyms, never the people behind them (see `docs/analytics.md`).
"""
