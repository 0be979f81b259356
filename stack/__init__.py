"""The Docker-less local stack: Postgres with the Supabase platform layer, and later the API server."""
