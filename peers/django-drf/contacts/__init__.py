"""The contacts API as a Django app: unmanaged models over the first study's tables, DRF
serializers and views, and the request's database access (`database`)."""
