"""The library's tables."""
from __future__ import annotations

from library import db


class Book(db.Model):
    """A book in the catalogue."""

    __tablename__ = "books"

    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    author = db.Column(db.String(200), nullable=False)
    published_on = db.Column(db.Date, nullable=True)


class Loan(db.Model):
    """A book lent to a reader; `returned_on` is NULL while it is out."""

    __tablename__ = "loans"

    id = db.Column(db.Integer, primary_key=True)
    book_id = db.Column(db.ForeignKey("books.id"), nullable=False, index=True)
    reader = db.Column(db.String(200), nullable=False)
    returned_on = db.Column(db.Date, nullable=True)
