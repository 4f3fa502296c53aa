"""DRF serializers in the contract's field order (which is the byte order on the wire). A
contact's phones and emails are flat lists of strings, read from the `prefetch_related` cache:
serializing a page runs no query."""

from rest_framework import serializers

from contacts.models import Contact, ContactType


class ContactTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContactType
        fields = ["type_id", "type_name"]


class ContactSerializer(serializers.ModelSerializer):
    contact_type = ContactTypeSerializer(read_only=True)
    phone_number = serializers.SlugRelatedField(
        source="phones", slug_field="phone_number", many=True, read_only=True
    )
    email = serializers.SlugRelatedField(
        source="emails", slug_field="email_address", many=True, read_only=True
    )

    class Meta:
        model = Contact
        fields = ["contact_id", "first_name", "last_name", "contact_type", "phone_number", "email"]
