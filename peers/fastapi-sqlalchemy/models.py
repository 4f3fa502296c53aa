"""The ORM mapping of `schema/schema.sql` (SQLAlchemy 2 declarative, typed `Mapped` columns),
with the first study's column names (`contacts.type_id`, `contact_emails.email_address`).

Every relationship is `lazy="raise"`: a contact's phones, emails and type are loaded only by the
query's own options (a join, or one `selectinload` statement per collection for a whole page), so
the statement budget (none per contact) cannot be broken by an attribute access.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class ContactType(Base):
    __tablename__ = "contact_types"

    type_id: Mapped[int] = mapped_column(primary_key=True)
    type_name: Mapped[str] = mapped_column(String(50), unique=True)


class Contact(Base):
    __tablename__ = "contacts"

    contact_id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    type_id: Mapped[int] = mapped_column(ForeignKey("contact_types.type_id"))

    contact_type: Mapped[ContactType] = relationship(lazy="raise")
    phones: Mapped[list[ContactPhone]] = relationship(
        order_by="ContactPhone.phone_id", lazy="raise"
    )
    emails: Mapped[list[ContactEmail]] = relationship(
        order_by="ContactEmail.email_id", lazy="raise"
    )

    # The contract's lists of plain strings, as the response model reads them.
    phone_number: AssociationProxy[list[str]] = association_proxy("phones", "phone_number")
    email: AssociationProxy[list[str]] = association_proxy("emails", "email_address")


class ContactPhone(Base):
    __tablename__ = "contact_phones"

    phone_id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.contact_id"))
    phone_number: Mapped[str] = mapped_column(String(30))


class ContactEmail(Base):
    __tablename__ = "contact_emails"

    email_id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.contact_id"))
    email_address: Mapped[str] = mapped_column(String(254))
