"""One module per paper; every network is wrapped as a scikit-learn style regressor."""
