"""The ops page: live figures of the whole pipeline, an appeal search and its trace."""
