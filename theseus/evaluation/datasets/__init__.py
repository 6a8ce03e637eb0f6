"""Built-in evaluations, registered by key. Add one with a file here and a line below
(or, from your own module, ``EVALUATIONS["my_eval"] = MyEvaluation``)."""

from theseus.evaluation.datasets.arc_easy import ArcEasy
from theseus.evaluation.datasets.arithmetic import Arithmetic
from theseus.evaluation.datasets.hellaswag import HellaSwag
from theseus.evaluation.datasets.lambada import Lambada
from theseus.evaluation.datasets.piqa import Piqa
from theseus.evaluation.datasets.shakespeare import ShakespeareNextToken, ShakespearePerplexity
from theseus.registry import EVALUATIONS

EVALUATIONS["shakespeare_ppl"] = ShakespearePerplexity
EVALUATIONS["shakespeare_next_token"] = ShakespeareNextToken
EVALUATIONS["arithmetic"] = Arithmetic
EVALUATIONS["hellaswag"] = HellaSwag
EVALUATIONS["arc_easy"] = ArcEasy
EVALUATIONS["piqa"] = Piqa
EVALUATIONS["lambada"] = Lambada
