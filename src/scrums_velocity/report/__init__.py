"""The reporter: velocity tables and charts as HTML, CSV and Parquet, and the leads' emails."""
