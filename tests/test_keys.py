"""Key names: one run's keys share a Redis Cluster hash slot."""

from redis.crc import key_slot

from app.keys import Keys, chunk_of, job_id


def test_a_runs_keys_share_one_cluster_slot() -> None:
    keys = Keys("chunksum")
    slots = {key_slot(key.encode()) for key in keys.run_keys("3c1d0e6f")}
    assert len(slots) == 1
    assert keys.run("3c1d0e6f") == "chunksum:run:{3c1d0e6f}"


def test_a_job_id_names_its_run_and_chunk() -> None:
    assert chunk_of(job_id("3c1d0e6f", 12)) == ("3c1d0e6f", 12)
    assert chunk_of("some-other-job") is None
