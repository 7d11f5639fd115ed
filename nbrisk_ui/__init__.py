"""Streamlit helpers shared by the pages (UI only: all logic lives in ``nbrisk_core``)."""
