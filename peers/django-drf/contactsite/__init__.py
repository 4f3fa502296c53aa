"""The Django project of the django-drf peer: its settings, built from the contract's
configuration, and its URLs."""
