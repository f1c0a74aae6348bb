"""Streamlit glue shared by the pages: caching, the baseline picker, and charts."""
