"""The worker processes: the fetcher and the deliverer, both kombu consumers."""
