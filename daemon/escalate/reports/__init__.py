"""Reading for people: queries behind the listings, the report and its charts, tables, and
the rules explained, simulated and written out as a procedure."""
