"""The first study's tables as Django models. Unmanaged: `schema/schema.sql` owns the tables (the
seeder creates them), so Django never migrates them; the names are the study's, in `db_table` and
`db_column`, and `Meta.ordering` is the contract's order of each list."""

from django.db import models


class ContactType(models.Model):
    type_id = models.AutoField(primary_key=True)
    type_name = models.CharField(max_length=50, unique=True)

    class Meta:
        managed = False
        db_table = "contact_types"
        ordering = ["type_id"]


class Contact(models.Model):
    contact_id = models.AutoField(primary_key=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    contact_type = models.ForeignKey(
        ContactType, on_delete=models.CASCADE, db_column="type_id", related_name="contacts"
    )

    class Meta:
        managed = False
        db_table = "contacts"
        ordering = ["contact_id"]


class Phone(models.Model):
    phone_id = models.AutoField(primary_key=True)
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, db_column="contact_id", related_name="phones"
    )
    phone_number = models.CharField(max_length=30)

    class Meta:
        managed = False
        db_table = "contact_phones"
        ordering = ["phone_id"]


class Email(models.Model):
    email_id = models.AutoField(primary_key=True)
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, db_column="contact_id", related_name="emails"
    )
    email_address = models.CharField(max_length=254)

    class Meta:
        managed = False
        db_table = "contact_emails"
        ordering = ["email_id"]
