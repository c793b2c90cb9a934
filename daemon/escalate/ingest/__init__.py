"""The mailbox into tickets: polling IMAP, folder locks, deduplication, threading mail into
conversations, attachments, quarantine, and importing history."""
