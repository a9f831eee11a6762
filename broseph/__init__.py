"""
Broseph jobs: the Postgres-native background job service of Broseph.
"""

__version__ = "0.1.0"
