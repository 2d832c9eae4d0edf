"""Stage 5: structural distributions (RDF, ADF, CDF), TAE against the all-atom
reference, and the statistics of the findings."""
