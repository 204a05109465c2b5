# Seed listing 2: return_sequences=True -> h for every timestep. (keras -> rnnstate)
from rnnstate.models import Model
from rnnstate.layers import Input
from rnnstate.layers import LSTM
from numpy import array
# define model
inputs1 = Input(shape=(3, 1))
lstm1 = LSTM(1, return_sequences=True)(inputs1)
model = Model(inputs=inputs1, outputs=lstm1)
# define input data
data = array([0.1, 0.2, 0.3]).reshape((1,3,1))
# make and show prediction
print(model.predict(data))
