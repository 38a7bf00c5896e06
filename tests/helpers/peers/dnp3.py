"""A DNP3 outstation and master over TCP from dnp3py: `python -m tests.helpers.peers.dnp3 server|client HOST`.

The outstation has binary and analog inputs and a binary output that accepts every control. The master polls
(integrity, then class 1-3), selects and operates the output, operates it directly, and exits 0.
"""

from __future__ import annotations

import asyncio
import sys

from dnp3.database import AnalogInputConfig, BinaryInputConfig, BinaryOutputConfig, Database
from dnp3.master import DefaultSOEHandler, Master, MasterConfig, MasterTcpRunner
from dnp3.outstation import Outstation, OutstationConfig, OutstationTcpRunner
from dnp3.outstation.handler import CommandResult, DefaultCommandHandler

PORT = 20000
OUTSTATION, MASTER = 10, 1
# the master's requests, as sorf records them: (protocol, function_name)
REQUESTS = {("dnp3", name) for name in ("READ", "SELECT", "OPERATE", "DIRECT_OPERATE")}


class Relay(DefaultCommandHandler):
    """Binary output 0, which does whatever the master asks."""

    def select_binary_output(self, *_control, **_select) -> CommandResult:
        return CommandResult.success()

    operate_binary_output = direct_operate_binary_output = select_binary_output


async def serve(host: str) -> None:
    database = Database()
    database.add_binary_input(0, BinaryInputConfig())
    database.add_analog_input(0, AnalogInputConfig())
    database.add_binary_output(0, BinaryOutputConfig())
    database.update_binary_input(0, value=True)
    database.update_analog_input(0, value=42)
    outstation = Outstation(database=database, config=OutstationConfig(address=OUTSTATION), handler=Relay())
    await OutstationTcpRunner(outstation=outstation, host=host, port=PORT).run()


async def client(host: str) -> None:
    master = Master(handler=DefaultSOEHandler(), config=MasterConfig(address=MASTER, outstation_address=OUTSTATION))
    async with MasterTcpRunner(master=master, host=host, port=PORT) as runner:
        await runner.integrity_poll()
        await runner.class_poll()
        controls = master.command_builder().latch_on(0)
        await runner.request(master.build_select(controls.build_select()))
        await runner.request(master.build_operate(controls.build_operate()))
        await runner.request(master.build_direct_operate(controls.build_direct_operate()))


if __name__ == "__main__":
    asyncio.run({"server": serve, "client": client}[sys.argv[1]](sys.argv[2]))
