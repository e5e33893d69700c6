"""Server-rendered pages for officials and enterprises (Jinja2, Babel, no build step)."""
