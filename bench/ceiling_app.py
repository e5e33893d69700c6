"""The ceiling for bench/checkrequest_bench.py: bare FastAPI, one asyncpg insert per POST."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def ceiling_app() -> FastAPI:
    """FastAPI + an asyncpg pool; POST /ceiling inserts one row in a transaction."""
    pool: dict[str, asyncpg.Pool] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        size = int(os.environ.get("INSPECTION_HUB_DB_POOL_SIZE", "5"))
        pool["p"] = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=size, max_size=size)
        yield
        await pool["p"].close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/ceiling", response_model=None)
    async def insert(request: Request) -> JSONResponse:
        body = await request.body()
        async with pool["p"].acquire() as conn, conn.transaction():
            new_id = await conn.fetchval(
                "INSERT INTO bench_ceiling (body) VALUES ($1::jsonb) RETURNING id", body.decode()
            )
        return JSONResponse({"id": new_id}, status_code=201)

    return app
