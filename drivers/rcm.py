# Residual-current monitor (IEC 62955 RDC-DD, 6 mA DC): fault output and test input.


class Rcm:
    def __init__(self, fault, test=None, fault_level=1, test_level=1, hard_irq=False):
        self._fault = fault
        self._hard = hard_irq  # the port's Pin.irq takes hard=True (stm32; not esp32)
        self._test = test
        self._fault_level = fault_level
        self._test_level = test_level
        if test is not None:
            test.value(1 - test_level)

    def fault(self):
        return self._fault.value() == self._fault_level

    def set_test(self, on):
        if self._test is not None:
            self._test.value(self._test_level if on else 1 - self._test_level)

    def on_trip(self, handler):
        """Call handler(pin) on the fault edge (IRQ); it must not allocate. False if the
        pin has no interrupt support. Hard where the board says the port has it: the
        handler then runs at the edge, even while the interpreter is blocked in C; a soft
        (scheduled) one runs only at the next bytecode (docs/boards.md)."""
        if not hasattr(self._fault, "irq"):
            return False
        trig = self._fault.IRQ_RISING if self._fault_level else self._fault.IRQ_FALLING
        if self._hard:
            self._fault.irq(handler, trig, hard=True)
        else:
            self._fault.irq(handler, trig)
        return True
