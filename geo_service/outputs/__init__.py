"""What people take away: map images and PDFs, area reports, EA field maps and downloads."""
